//! `floor-uring [PORT]`: the same floor as `floor-epoll` on io_uring, with what io_uring offers
//! to cut the kernel's work per request. One thread, one ring (single issuer, task work deferred
//! to the wait, so completions run in this thread's `io_uring_enter` rather than interrupting
//! it). One multishot accept into the ring's own file table (no descriptor, no `fget`/`fput` per
//! operation); per connection one multishot `recv` that picks its buffers from a provided-buffer
//! ring, armed once. Per request: a completion for the bytes received, one `send` submitted by
//! the one `io_uring_enter` that also waits for the next completions; no system call of its own.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use floor_hello::{listen, port, responses, Heads};

const RING_ENTRIES: u32 = 1024;
/// Connections the ring's file table holds.
const MAX_CONNS: u32 = 4096;
/// Provided buffers: a head each, shared by every connection.
const BUFFERS: u16 = 1024;
const BUFFER_SIZE: usize = 2048;
const BUFFER_GROUP: u16 = 0;
/// What a completion is for: its user data is the connection's file index shifted left, or'ed
/// with this.
const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const CLOSE: u64 = 3;

/// A connection's state; its output stays put while the kernel sends it.
#[derive(Default)]
struct Conn {
    output: Vec<u8>,
    heads: Heads,
    /// Responses owed that wait for the send in flight to finish.
    owed: usize,
    sending: bool,
}

/// The provided-buffer ring: the kernel takes buffers from it, this thread gives them back.
struct Buffers {
    ring: *mut types::BufRingEntry,
    memory: Vec<u8>,
    tail: u16,
}

impl Buffers {
    fn register(uring: &IoUring) -> io::Result<Self> {
        let ring_bytes = usize::from(BUFFERS) * size_of::<types::BufRingEntry>();
        // SAFETY: a fresh private anonymous mapping, page-aligned as the kernel requires, never
        // unmapped (it lives as long as the process).
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut buffers = Buffers {
            ring: ring.cast(),
            memory: vec![0; usize::from(BUFFERS) * BUFFER_SIZE],
            tail: 0,
        };
        // SAFETY: the mapping holds BUFFERS entries and outlives the ring.
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                ring as u64,
                BUFFERS,
                BUFFER_GROUP,
                0,
            )?;
        }
        for id in 0..BUFFERS {
            buffers.give_back(id);
        }
        Ok(buffers)
    }

    fn bytes(&self, id: u16, len: usize) -> &[u8] {
        &self.memory[usize::from(id) * BUFFER_SIZE..][..len]
    }

    /// Buffer `id` may be filled again.
    fn give_back(&mut self, id: u16) {
        let slot = usize::from(self.tail & (BUFFERS - 1));
        let addr = self.memory[usize::from(id) * BUFFER_SIZE..].as_ptr() as u64;
        // SAFETY: `slot` is inside the mapping; the kernel reads entries only up to the tail,
        // which moves past this one after it is written.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(addr);
        entry.set_len(BUFFER_SIZE as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is the u16 the kernel reads in the ring's first entry, aligned; the
        // release store publishes the entry written above before the new tail.
        let tail = unsafe { &*types::BufRingEntry::tail(self.ring).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

fn main() -> io::Result<()> {
    let listener = listen(port())?;
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(RING_ENTRIES * 4)
        .build(RING_ENTRIES)?;
    ring.submitter().register_files_sparse(MAX_CONNS)?;
    let mut buffers = Buffers::register(&ring)?;
    let mut conns: Vec<Option<Conn>> = (0..MAX_CONNS).map(|_| None).collect();
    push(&mut ring, accept(listener))?;
    let mut completed = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        completed.clear();
        completed.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, result, flags) in &completed {
            let index = (data >> 8) as u32;
            match data & 0xff {
                ACCEPT => {
                    if !cqueue::more(flags) {
                        push(&mut ring, accept(listener))?;
                    }
                    if result < 0 {
                        eprintln!(
                            "floor-uring: accept: {}",
                            io::Error::from_raw_os_error(-result)
                        );
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    conns[result as usize] = Some(Conn::default());
                    push(&mut ring, recv(result as u32))?;
                }
                RECV => {
                    let Some(conn) = conns[index as usize].as_mut() else {
                        continue;
                    };
                    if let Some(id) = cqueue::buffer_select(flags) {
                        let got = result.max(0) as usize;
                        conn.owed += conn.heads.count(buffers.bytes(id, got));
                        buffers.give_back(id);
                    }
                    if conn.owed > 0 && !conn.sending {
                        push(&mut ring, send(index, conn))?;
                    }
                    if !cqueue::more(flags) {
                        // Out of buffers, or the connection ended.
                        if result > 0 || result == -libc::ENOBUFS {
                            push(&mut ring, recv(index))?;
                        } else {
                            close(&mut ring, &mut conns, index)?;
                        }
                    }
                }
                SEND => {
                    let Some(conn) = conns[index as usize].as_mut() else {
                        continue;
                    };
                    conn.sending = false;
                    // A failed send ends the connection through its recv, which sees the error
                    // or the end too.
                    if result >= 0 && conn.owed > 0 {
                        push(&mut ring, send(index, conn))?;
                    }
                }
                CLOSE => {}
                _ => unreachable!("user data is ours"),
            }
        }
    }
}

/// Accept every connection from now on into the ring's file table, until the kernel ends it
/// (no `F_MORE`).
fn accept(listener: libc::c_int) -> squeue::Entry {
    opcode::AcceptMulti::new(types::Fd(listener))
        .allocate_file_index(true)
        .build()
        .user_data(ACCEPT)
}

fn recv(index: u32) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fixed(index), BUFFER_GROUP)
        .build()
        .user_data(u64::from(index) << 8 | RECV)
}

/// The responses owed, in one send.
fn send(index: u32, conn: &mut Conn) -> squeue::Entry {
    responses(&mut conn.output, conn.owed);
    conn.owed = 0;
    conn.sending = true;
    opcode::Send::new(
        types::Fixed(index),
        conn.output.as_ptr(),
        conn.output.len() as u32,
    )
    .flags(libc::MSG_NOSIGNAL)
    .build()
    .user_data(u64::from(index) << 8 | SEND)
}

/// Queue `entry`, submitting what is queued first if the queue is full.
fn push(ring: &mut IoUring, entry: squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every buffer an entry names is a connection's output, dropped only when no
        // send of it is in flight (`close`), or a provided buffer, which lives as long as the
        // ring.
        if unsafe { ring.submission().push(&entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// The connection ended (its recv too): its file index is closed; its output goes once no send
/// of it is in flight.
fn close(ring: &mut IoUring, conns: &mut [Option<Conn>], index: u32) -> io::Result<()> {
    push(
        ring,
        opcode::Close::new(types::Fixed(index))
            .build()
            .user_data(u64::from(index) << 8 | CLOSE),
    )?;
    if let Some(conn) = conns[index as usize].take() {
        if conn.sending {
            // Leaked rather than freed under the kernel's feet: a floor server, and a rare case.
            std::mem::forget(conn);
        }
    }
    Ok(())
}
