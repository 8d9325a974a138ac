//! One `-b/--bind ADDR[,OPTION...]`.
//!
//! ADDR is one of `HOST:PORT` (a name or an IPv4 address; a name means every address it
//! resolves to), `[V6]:PORT` (IPv6, bound v6-only), `:PORT` or `PORT` (every interface, IPv4
//! and IPv6), `unix:PATH`, `fd://N` (an inherited listening socket) or `fd://NAME` (the socket
//! systemd passed under that name); gunicorn's `tcp://HOST:PORT` and `unix://PATH` too. OPTIONs, after the first comma: `tls` (serve TLS on this
//! listener, with `--certfile`/`--keyfile`), `proxy` (expect a PROXY protocol header first) and
//! `h2` (serve HTTP/2 too).
//! A unix path therefore cannot contain a comma.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

/// What a listener does with its connections besides HTTP; every accepted connection carries
/// the options of the listener it came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ListenerOptions {
    /// Serve TLS (`--certfile`/`--keyfile`).
    pub(crate) tls: bool,
    /// A PROXY protocol (v1 or v2) header comes first on every connection.
    pub(crate) proxy_protocol: bool,
    /// Serve HTTP/2 here too (`--http2 on` does on every listener).
    pub(crate) http2: bool,
}

/// The option words, as `-b` takes them and the worker's `--listener` passes them on.
const TLS: &str = "tls";
const PROXY: &str = "proxy";
const H2: &str = "h2";
/// A listener without options, on the worker's command line.
const PLAIN: &str = "plain";

impl ListenerOptions {
    /// Apply one option word.
    fn set(&mut self, word: &str) -> Result<(), String> {
        match word {
            TLS => self.tls = true,
            PROXY => self.proxy_protocol = true,
            H2 => self.http2 = true,
            "" => return Err("an empty listener option (two commas, or one at the end)".into()),
            other => {
                return Err(format!(
                    "unknown listener option '{other}' (known: {TLS}, {PROXY}, {H2})"
                ))
            }
        }
        Ok(())
    }
}

impl fmt::Display for ListenerOptions {
    /// `plain`, or the words that are set (`tls,proxy,h2`): what [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = [
            (self.tls, TLS),
            (self.proxy_protocol, PROXY),
            (self.http2, H2),
        ];
        let mut set = words.iter().filter(|(on, _)| *on).map(|(_, word)| *word);
        match set.next() {
            None => f.write_str(PLAIN),
            Some(first) => {
                f.write_str(first)?;
                set.try_for_each(|word| write!(f, ",{word}"))
            }
        }
    }
}

impl FromStr for ListenerOptions {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut options = ListenerOptions::default();
        if s != PLAIN {
            for word in s.split(',') {
                options.set(word)?;
            }
        }
        Ok(options)
    }
}

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListenAddr {
    /// An IP address literal: IPv4 `1.2.3.4:80` or bracketed IPv6 `[::1]:80`.
    Ip(SocketAddr),
    /// A host name: every address it resolves to, each its own socket.
    Name {
        host: String,
        port: u16,
    },
    /// `:PORT` or `PORT`: every interface, `0.0.0.0` and `[::]` (v6-only).
    AnyHost(u16),
    Unix(PathBuf),
    /// An inherited listening socket at this descriptor number.
    Fd(RawFd),
    /// The socket systemd passed under this name (`FileDescriptorName=`, `LISTEN_FDNAMES`).
    FdName(String),
}

/// One `-b` value: an address and its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListenerSpec {
    pub(crate) addr: ListenAddr,
    pub(crate) options: ListenerOptions,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Ip(addr) => write!(f, "{addr}"),
            ListenAddr::Name { host, port } => write!(f, "{host}:{port}"),
            ListenAddr::AnyHost(port) => write!(f, ":{port}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddr::Fd(fd) => write!(f, "fd://{fd}"),
            ListenAddr::FdName(name) => write!(f, "fd://{name}"),
        }
    }
}

impl fmt::Display for ListenerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if self.options != ListenerOptions::default() {
            write!(f, ",{}", self.options)?;
        }
        Ok(())
    }
}

impl FromStr for ListenerSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, options_text) = match s.split_once(',') {
            Some((addr, options)) => (addr, Some(options)),
            None => (s, None),
        };
        let mut options = ListenerOptions::default();
        for word in options_text.into_iter().flat_map(|o| o.split(',')) {
            options.set(word)?;
        }
        Ok(ListenerSpec {
            addr: parse_addr(addr)?,
            options,
        })
    }
}

const EXPECTED: &str =
    "expected HOST:PORT, [IPV6]:PORT, :PORT, PORT, unix:PATH, fd://N or fd://NAME";

fn parse_addr(addr: &str) -> Result<ListenAddr, String> {
    // gunicorn's spellings: `tcp://HOST:PORT` is HOST:PORT, `unix://PATH` is unix:PATH.
    if let Some(rest) = addr.strip_prefix("tcp://") {
        if rest.starts_with("unix:") || rest.starts_with("fd://") {
            return Err(format!("'{addr}': tcp:// takes HOST:PORT"));
        }
        return parse_addr(rest);
    }
    let unix = addr.strip_prefix("unix://").or(addr.strip_prefix("unix:"));
    if let Some(path) = unix {
        if path.is_empty() {
            return Err("unix: needs a path, e.g. unix:/run/app.sock".into());
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    if let Some(fd) = addr.strip_prefix("fd://") {
        return match fd.parse::<RawFd>() {
            Ok(n) if n >= 0 => Ok(ListenAddr::Fd(n)),
            Ok(_) => Err(format!("fd://{fd}: a descriptor number is not negative")),
            Err(_) if valid_fd_name(fd) => Ok(ListenAddr::FdName(fd.to_owned())),
            Err(_) => Err(format!(
                "fd://{fd}: expected a descriptor number or a systemd socket name"
            )),
        };
    }
    if let Ok(port) = addr.parse::<u16>() {
        return Ok(ListenAddr::AnyHost(port));
    }
    if let Ok(ip) = addr.parse::<SocketAddr>() {
        return Ok(ListenAddr::Ip(ip));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("'{addr}': no port; {EXPECTED}"));
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("'{addr}': '{port}' is not a port number (0-65535)"))?;
    if host.is_empty() {
        return Ok(ListenAddr::AnyHost(port));
    }
    if host.starts_with('[') || host.contains(':') {
        return Err(format!(
            "'{addr}': not an IPv6 address; write it in brackets, e.g. [::1]:{port}"
        ));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("'{addr}': '{host}' is not an IPv4 address"));
    }
    if host.parse::<IpAddr>().is_ok() || !valid_host_name(host) {
        return Err(format!("'{addr}': '{host}' is not a host name; {EXPECTED}"));
    }
    Ok(ListenAddr::Name {
        host: host.to_owned(),
        port,
    })
}

/// RFC 1123 letters, digits, hyphens and dots (and underscores, which resolvers accept).
fn valid_host_name(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// systemd's rule for `FileDescriptorName=`: printable ASCII without `:`, at most 255 bytes.
fn valid_fd_name(name: &str) -> bool {
    const MAX_FD_NAME: usize = 255;
    !name.is_empty()
        && name.len() <= MAX_FD_NAME
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ListenerSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn addr(s: &str) -> ListenAddr {
        spec(s).addr
    }

    #[test]
    fn every_address_kind_parses() {
        assert_eq!(
            addr("127.0.0.1:80"),
            ListenAddr::Ip("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            addr("[::1]:8000"),
            ListenAddr::Ip("[::1]:8000".parse().unwrap())
        );
        assert_eq!(
            addr("[::]:8000"),
            ListenAddr::Ip("[::]:8000".parse().unwrap())
        );
        assert_eq!(addr(":8000"), ListenAddr::AnyHost(8000));
        assert_eq!(addr("8000"), ListenAddr::AnyHost(8000));
        assert_eq!(
            addr("localhost:8000"),
            ListenAddr::Name {
                host: "localhost".into(),
                port: 8000
            }
        );
        assert_eq!(
            addr("unix:/run/a.sock"),
            ListenAddr::Unix("/run/a.sock".into())
        );
        assert_eq!(addr("unix:rel.sock"), ListenAddr::Unix("rel.sock".into()));
        assert_eq!(
            addr("unix:///run/a.sock"),
            ListenAddr::Unix("/run/a.sock".into())
        );
        assert_eq!(addr("unix://rel.sock"), ListenAddr::Unix("rel.sock".into()));
        assert_eq!(addr("tcp://127.0.0.1:80"), addr("127.0.0.1:80"));
        assert_eq!(addr("tcp://[::1]:80"), addr("[::1]:80"));
        assert_eq!(addr("tcp://:8000"), ListenAddr::AnyHost(8000));
        assert_eq!(
            addr("tcp://localhost:8000"),
            ListenAddr::Name {
                host: "localhost".into(),
                port: 8000
            }
        );
        assert_eq!(addr("fd://3"), ListenAddr::Fd(3));
        assert_eq!(addr("fd://web"), ListenAddr::FdName("web".into()));
    }

    #[test]
    fn options_follow_the_first_comma() {
        let both = spec("unix:/run/a.sock,tls,proxy");
        assert_eq!(both.addr, ListenAddr::Unix("/run/a.sock".into()));
        assert!(both.options.tls && both.options.proxy_protocol);
        assert_eq!(spec("8000,proxy").options.to_string(), "proxy");
        assert_eq!(spec("8000").options, ListenerOptions::default());
        assert_eq!(spec("[::1]:1,tls").to_string(), "[::1]:1,tls");
    }

    #[test]
    fn options_round_trip_through_the_worker_command_line() {
        for options in ["plain", "tls", "proxy", "tls,proxy"] {
            let parsed: ListenerOptions = options.parse().unwrap();
            assert_eq!(parsed.to_string(), options);
        }
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        for (bad, says) in [
            ("127.0.0.1:80,tsl", "unknown listener option 'tsl'"),
            ("127.0.0.1:80,", "empty listener option"),
            ("127.0.0.1", "no port"),
            ("localhost:http", "not a port number"),
            ("host:70000", "not a port number"),
            ("::1:80", "brackets"),
            ("unix:", "needs a path"),
            ("fd://-1", "not negative"),
            ("fd://a:b", "descriptor number or a systemd socket name"),
            ("tcp://unix:/a.sock", "tcp:// takes HOST:PORT"),
            ("tcp://", "no port"),
            ("bad host:80", "not a host name"),
            ("300.1.1.1:80", "not an IPv4 address"),
        ] {
            let err = bad.parse::<ListenerSpec>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
