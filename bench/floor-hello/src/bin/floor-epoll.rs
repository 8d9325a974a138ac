//! `floor-epoll [PORT]`: the least an epoll server can do per keep-alive request. One thread,
//! one epoll instance; connections are registered edge-triggered once, at accept. Per request:
//! one `read` (a short read means the socket is empty: the next byte to arrive raises a new edge,
//! so no second read to see EAGAIN) and one `send` of the fixed responses of the heads that
//! ended; `epoll_wait` is shared by every connection that became readable meanwhile.

use std::io;

use floor_hello::{check, listen, port, responses, Heads};

const LISTENER: u64 = u64::MAX;
const READ_SIZE: usize = 4096;

fn main() -> io::Result<()> {
    let listener = listen(port())?;
    // SAFETY: epoll_create1(2) takes no pointers.
    let epoll = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    register(epoll, listener, libc::EPOLLIN as u32, LISTENER)?;
    // A connection's head scanner, by descriptor.
    let mut heads: Vec<Heads> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut input = vec![0u8; READ_SIZE];
    let mut output = Vec::new();
    loop {
        // SAFETY: `events` holds as many entries as the length given.
        let ready = match check(unsafe {
            libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as libc::c_int, -1)
        }) {
            Ok(ready) => ready as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for event in &events[..ready] {
            if event.u64 == LISTENER {
                accept_all(epoll, listener, &mut heads)?;
                continue;
            }
            let fd = event.u64 as libc::c_int;
            serve(fd, &mut heads[fd as usize], &mut input, &mut output);
        }
    }
}

fn register(epoll: libc::c_int, fd: libc::c_int, events: u32, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: `event` is alive for the call.
    check(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) }).map(drop)
}

fn accept_all(epoll: libc::c_int, listener: libc::c_int, heads: &mut Vec<Heads>) -> io::Result<()> {
    loop {
        // SAFETY: null address pointers: the peer's address is not wanted.
        let fd = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return Ok(());
        }
        if heads.len() <= fd as usize {
            heads.resize_with(fd as usize + 1, Heads::default);
        }
        heads[fd as usize] = Heads::default();
        register(epoll, fd, (libc::EPOLLIN | libc::EPOLLET) as u32, fd as u64)?;
    }
}

/// Read what the connection sent, answer every head that ended; close it at its end or error.
fn serve(fd: libc::c_int, heads: &mut Heads, input: &mut [u8], output: &mut Vec<u8>) {
    loop {
        // SAFETY: `input` is writable for its length.
        let got = unsafe { libc::read(fd, input.as_mut_ptr().cast(), input.len()) };
        if got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
            return;
        }
        if got <= 0 {
            // SAFETY: `fd` is this connection's, closed once (which also unregisters it).
            unsafe { libc::close(fd) };
            return;
        }
        let got = got as usize;
        let ended = heads.count(&input[..got]);
        if ended > 0 {
            responses(output, ended);
            // A benchmark client reads its responses; a short send would only be a wrong answer
            // in a floor measurement, which wrk reports as such.
            // SAFETY: `output` is readable for its length.
            unsafe { libc::send(fd, output.as_ptr().cast(), output.len(), libc::MSG_NOSIGNAL) };
        }
        if got < input.len() {
            return;
        }
    }
}
