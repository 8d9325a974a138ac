//! What both floor servers share: the listening socket, the fixed response, and counting the
//! request heads in what a connection sent.
//!
//! Every libc call here and in the two binaries is a plain system call on descriptors this
//! process owns, with buffers that outlive the call; each `unsafe` block says which.

use std::io;

/// The answer to every head: the size of hyper-hello's (status line, Content-Type,
/// Content-Length, a Date of the same length, the 14-byte greeting). Fixed: the floor computes
/// nothing per request.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 14\r\n\
date: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\nHello, World!\n";

/// The response, made `$FLOOR_PAD` bytes longer by one more header if that is set: what the
/// size of a response alone costs the kernel (webserver's hello answers 175 bytes, hyper's 116).
pub fn response() -> &'static [u8] {
    static RESPONSE_PADDED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    RESPONSE_PADDED.get_or_init(|| {
        let pad: usize =
            std::env::var("FLOOR_PAD").map_or(0, |v| v.parse().expect("FLOOR_PAD is a number"));
        let mut bytes = RESPONSE.to_vec();
        if pad > 0 {
            // "x: " + filler + CRLF, before the blank line.
            let at = RESPONSE
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head")
                + 2;
            let header = [
                b"x: ".as_slice(),
                &vec![b'p'; pad.saturating_sub(5)],
                b"\r\n",
            ]
            .concat();
            bytes.splice(at..at, header);
        }
        bytes
    })
}

/// The port from the first argument, else `$PORT`, else 8080.
pub fn port() -> u16 {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map_or(8080, |text| text.parse().expect("the port is a number"))
}

/// `-1` from libc as the errno error.
pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A non-blocking TCP listener on 127.0.0.1:`port`.
pub fn listen(port: u16) -> io::Result<libc::c_int> {
    // SAFETY: socket(2) takes no pointers.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a sockaddr_in of the size given, alive for the call.
    check(unsafe {
        libc::bind(
            fd,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // Accepted connections inherit these: no setsockopt per connection.
    no_delay(fd)?;
    if let Ok(name) = std::env::var("FLOOR_CC") {
        // What the congestion control costs per request (the machine's default may be BBR).
        // SAFETY: `name` is readable for its length, alive for the call.
        check(unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        })?;
    }
    // SAFETY: listen(2) takes no pointers.
    check(unsafe { libc::listen(fd, 1024) })?;
    eprintln!("floor-hello: listening on http://127.0.0.1:{port}");
    Ok(fd)
}

/// Small responses leave at once, as in every server of the comparison.
fn no_delay(fd: libc::c_int) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
}

fn set_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a c_int of the size given, alive for the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Where a connection is in the `\r\n\r\n` that ends a head, across reads.
#[derive(Default)]
pub struct Heads {
    matched: u8,
}

impl Heads {
    /// How many heads end in `bytes`.
    pub fn count(&mut self, bytes: &[u8]) -> usize {
        let mut ended = 0;
        for &byte in bytes {
            self.matched = match (self.matched, byte) {
                (0 | 2, b'\r') => self.matched + 1,
                (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.matched == 4 {
                ended += 1;
                self.matched = 0;
            }
        }
        ended
    }
}

/// `count` responses, one after another, in `out` (cleared first).
pub fn responses(out: &mut Vec<u8>, count: usize) {
    out.clear();
    for _ in 0..count {
        out.extend_from_slice(response());
    }
}
