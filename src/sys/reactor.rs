//! A socket handed to tokio's reactor (the HTTP/2 connections' runtime).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;

use super::socket::Stream;

/// A stream tokio's reactor watches; it owns the descriptor for as long as it is watched.
pub(crate) struct Watched(Stream);

impl Watched {
    pub(crate) fn stream(&mut self) -> &mut Stream {
        &mut self.0
    }
}

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers `stream` with the current tokio runtime's reactor. Must run inside that runtime.
pub(crate) fn watch(stream: Stream) -> io::Result<AsyncFd<Watched>> {
    // SAFETY: `Watched` owns the descriptor (a `Stream` is an `OwnedFd`) and is never given out
    // by value, so the descriptor stays open and names the same socket for as long as the
    // `AsyncFd` that owns the `Watched`; `as_raw_fd` always returns it.
    unsafe { AsyncFd::register(Watched(stream)) }.map_err(io::Error::from)
}
