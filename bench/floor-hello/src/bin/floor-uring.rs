//! `floor-uring [PORT]`: the same floor as `floor-epoll` on io_uring. One thread, one ring
//! (single issuer, task work deferred to the wait, so completions run in this thread's
//! `io_uring_enter` rather than in interrupts of it); one multishot accept; per connection one
//! `recv` in flight into its own buffer. Per request the kernel does the receive and the send
//! without a system call of their own: a completed `recv` is answered with a `send` and a fresh
//! `recv`, both submitted by the one `io_uring_enter` that also waits for the next completions.

use std::io;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use floor_hello::{listen, no_delay, port, responses, Heads};

const READ_SIZE: usize = 4096;
const RING_ENTRIES: u32 = 1024;
/// What a completion is for: its user data is the descriptor shifted left, or'ed with this.
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;

/// A connection's state; its buffers stay put while the kernel writes or reads them.
struct Conn {
    input: Box<[u8]>,
    output: Vec<u8>,
    heads: Heads,
    /// Responses owed that wait for the send in flight to finish.
    owed: usize,
    sending: bool,
}

fn main() -> io::Result<()> {
    let listener = listen(port())?;
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(RING_ENTRIES * 4)
        .build(RING_ENTRIES)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    push(&mut ring, accept(listener))?;
    let mut completed = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINTR)
                    || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        completed.clear();
        completed.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, result, flags) in &completed {
            let fd = (data >> 8) as libc::c_int;
            match data & 0xff {
                ACCEPT => {
                    if !cqueue::more(flags) {
                        push(&mut ring, accept(listener))?;
                    }
                    if result < 0 {
                        continue;
                    }
                    let fd = result;
                    no_delay(fd)?;
                    if conns.len() <= fd as usize {
                        conns.resize_with(fd as usize + 1, || None);
                    }
                    let conn = conns[fd as usize].insert(Conn {
                        input: vec![0; READ_SIZE].into_boxed_slice(),
                        output: Vec::new(),
                        heads: Heads::default(),
                        owed: 0,
                        sending: false,
                    });
                    push(&mut ring, recv(fd, conn))?;
                }
                RECV => {
                    let Some(conn) = conns[fd as usize].as_mut() else {
                        continue;
                    };
                    if result <= 0 {
                        close(&mut conns, fd);
                        continue;
                    }
                    conn.owed += conn.heads.count(&conn.input[..result as usize]);
                    if !conn.sending && conn.owed > 0 {
                        push(&mut ring, send(fd, conn))?;
                    }
                    push(&mut ring, recv(fd, conn))?;
                }
                SEND => {
                    let Some(conn) = conns[fd as usize].as_mut() else {
                        continue;
                    };
                    conn.sending = false;
                    // A failed send ends the connection through its recv, still in flight,
                    // which sees the error or the end too: closing here would free its buffer.
                    if result >= 0 && conn.owed > 0 {
                        push(&mut ring, send(fd, conn))?;
                    }
                }
                _ => unreachable!("user data is ours"),
            }
        }
    }
}

/// Accept every connection from now on, until the kernel ends it (no `F_MORE`).
fn accept(listener: libc::c_int) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(listener))
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(ACCEPT)
}

fn recv(fd: libc::c_int, conn: &mut Conn) -> squeue::Entry {
    opcode::Recv::new(
        types::Fd(fd),
        conn.input.as_mut_ptr(),
        conn.input.len() as u32,
    )
    .build()
    .user_data((fd as u64) << 8 | RECV)
}

/// The responses owed, in one send.
fn send(fd: libc::c_int, conn: &mut Conn) -> squeue::Entry {
    responses(&mut conn.output, conn.owed);
    conn.owed = 0;
    conn.sending = true;
    opcode::Send::new(
        types::Fd(fd),
        conn.output.as_ptr(),
        conn.output.len() as u32,
    )
    .flags(libc::MSG_NOSIGNAL)
    .build()
    .user_data((fd as u64) << 8 | SEND)
}

/// Queue `entry`, submitting what is queued first if the queue is full.
fn push(ring: &mut IoUring, entry: squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every buffer an entry names belongs to a connection that is dropped only when
        // its last operation has completed (`close`), or is the listener's descriptor.
        if unsafe { ring.submission().push(&entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// The connection ended: its descriptor closes; its buffers go once no operation of it is in
/// flight (its recv just completed; a send in flight leaves them until its completion).
fn close(conns: &mut [Option<Conn>], fd: libc::c_int) {
    // SAFETY: `fd` is this connection's descriptor, closed once.
    unsafe { libc::close(fd) };
    if let Some(conn) = conns[fd as usize].as_mut() {
        if conn.sending {
            // Leaked rather than freed under the kernel's feet: a floor server, and a rare case.
            std::mem::forget(conns[fd as usize].take());
            return;
        }
    }
    conns[fd as usize] = None;
}
