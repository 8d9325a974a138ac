//! The host's error stream (PEP 3333 `wsgi.errors`): [`LogLevel`], [`Logger`], [`InitContext`].

use super::deferred::host_is_1_1;
use crate::raw::{
    WsBytes, WsHost, WsInit, WS_LOG_DEBUG, WS_LOG_ERROR, WS_LOG_INFO, WS_LOG_TRACE, WS_LOG_WARN,
};
use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};
use std::io::Write;

/// A log level, with the `WS_LOG_*` values of the header (those of Rust's `log` crate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    /// `WS_LOG_ERROR`.
    Error = WS_LOG_ERROR,
    /// `WS_LOG_WARN`.
    Warn = WS_LOG_WARN,
    /// `WS_LOG_INFO`.
    Info = WS_LOG_INFO,
    /// `WS_LOG_DEBUG`.
    Debug = WS_LOG_DEBUG,
    /// `WS_LOG_TRACE`.
    Trace = WS_LOG_TRACE,
}

/// A handle on the host's `log` callback: the host vtable plus a `log_ctx`.
///
/// Both live as long as the process (header: "the host vtable and log_ctx live as long as the
/// process"), so a `Logger` is `Copy`, `Send` and `Sync` and may be kept anywhere — in the app
/// state, in a body iterator, in an `on_close` hook. Without a host `log` callback the message goes
/// to this process's stderr instead.
#[derive(Clone, Copy, Debug)]
pub struct Logger {
    host: *const WsHost,
    log_ctx: *const c_void,
}

// SAFETY: the pointers are to the server's process-lifetime vtable and log context, which the header
// allows to be used from any thread (`call`, `next` and `close` run on many threads and may all log).
unsafe impl Send for Logger {}
// SAFETY: as for Send; a Logger is never mutated and only passes the pointers back to the host.
unsafe impl Sync for Logger {}

impl Logger {
    /// A logger over a host vtable and log context.
    ///
    /// # Safety
    /// `host` must be null or point to a `WsHost` that stays valid for the rest of the process, and
    /// `log_ctx` must be a log context that `host.log` accepts for as long as the `Logger` (or any
    /// copy) is used — as `WsInit::log_ctx` and `WsRequest::log_ctx` are.
    pub unsafe fn from_raw(host: *const WsHost, log_ctx: *const c_void) -> Logger {
        Logger { host, log_ctx }
    }

    /// Sends one message to the host log.
    pub fn log(&self, level: LogLevel, msg: &str) {
        self.log_bytes(level, msg.as_bytes());
    }

    /// Sends one message, not necessarily UTF-8, to the host log.
    pub fn log_bytes(&self, level: LogLevel, msg: &[u8]) {
        // SAFETY: `from_raw`'s contract: `host` is null or a process-lifetime vtable.
        let log = unsafe { self.host.as_ref() }.and_then(|host| host.log);
        match log {
            // SAFETY: `log_ctx` is the context the host gave with this vtable; `msg` is valid for
            // the duration of the call, which is all the header lets the host rely on.
            Some(log) => unsafe { log(self.log_ctx, level as u32, msg.as_ptr(), msg.len()) },
            None => {
                // Best effort: a failed write to stderr must not panic inside a panic boundary.
                let _ = writeln!(
                    std::io::stderr(),
                    "[{level:?}] {}",
                    String::from_utf8_lossy(msg)
                );
            }
        }
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&self, msg: &str) {
        self.log(LogLevel::Error, msg);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&self, msg: &str) {
        self.log(LogLevel::Warn, msg);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, msg: &str) {
        self.log(LogLevel::Info, msg);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&self, msg: &str) {
        self.log(LogLevel::Debug, msg);
    }
}

/// What [`crate::App::init`] gets: the host log, the app arguments (ABI 1.1) and what the host
/// speaks. Borrows the server's `WsInit`, valid only during `init`; the [`Logger`] it hands out
/// outlives it.
#[derive(Debug)]
pub struct InitContext<'a> {
    logger: Logger,
    args: &'a [WsBytes],
    host: Option<&'static WsHost>,
    _init: PhantomData<&'a WsInit>,
}

/// What an app that needs ABI 1.1 says on a 1.0 server (the agreed wording of the ABI 1.1 design).
pub const NEEDS_ABI_1_1: &str =
    "needs a webserver speaking ABI 1.1 (wakers); this server speaks 1.0: upgrade webserver";

/// What an app that needs ABI 1.2 says on an older server (the wording of the upgrades design).
pub const NEEDS_ABI_1_2: &str = "this app needs webserver ABI 1.2 (upgraded connections, WebSockets) but the server speaks 1.1: upgrade webserver";

/// What an app that needs ABI 1.3 says on an older server.
pub const NEEDS_ABI_1_3: &str =
    "this app needs webserver ABI 1.3 (trailers) but the server speaks 1.2: upgrade webserver";

impl<'a> InitContext<'a> {
    /// Wraps the server's `WsInit`.
    ///
    /// # Safety
    /// `init.host` must be null or a process-lifetime `WsHost`, with `init.log_ctx` its log
    /// context (as the header guarantees for the `WsInit` passed to `init`).
    pub unsafe fn from_raw(init: &'a WsInit) -> InitContext<'a> {
        let has_args = init.size as usize >= offset_of!(WsInit, n_args) + size_of::<usize>();
        let args = if has_args && !init.args.is_null() && init.n_args > 0 {
            // SAFETY: the header: when `size` covers them, `args` points to `n_args` byte slices
            // valid during `init`, which is what 'a (the borrow of `init`) stands for.
            unsafe { core::slice::from_raw_parts(init.args, init.n_args) }
        } else {
            &[]
        };
        InitContext {
            // SAFETY: forwarded from this function's contract.
            logger: unsafe { Logger::from_raw(init.host, init.log_ctx) },
            args,
            // SAFETY: this function's contract: null or the process-lifetime vtable.
            host: unsafe { init.host.as_ref() },
            _init: PhantomData,
        }
    }

    /// The app arguments: the words after `LIB:SYMBOL` on the server's command line
    /// (`webserver LIB:SYMBOL [ARGS]...`), as bytes; empty on a 1.0 server. Copy what you keep.
    pub fn args(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        // SAFETY: `from_raw` checked that the slices are the server's, valid for 'a.
        self.args.iter().map(|b| unsafe { b.as_slice() })
    }

    /// Whether the server speaks ABI 1.1: wakers, `try_read`, deferred responses.
    pub fn host_is_1_1(&self) -> bool {
        self.host.is_some_and(host_is_1_1)
    }

    /// `Err` with the standard message when the server only speaks ABI 1.0: an app that defers
    /// responses returns it from `init` (`ctx.require_abi_1_1()?`), refusing to load there.
    pub fn require_abi_1_1(&self) -> Result<(), String> {
        if self.host_is_1_1() {
            Ok(())
        } else {
            Err(NEEDS_ABI_1_1.to_owned())
        }
    }

    /// Whether the server speaks ABI 1.2: upgraded connections and WebSockets (every call from
    /// `upgrade` to `websocket_close` present).
    pub fn host_is_1_2(&self) -> bool {
        self.host.is_some_and(|h| {
            host_is_1_1(h)
                && h.has_upgrades()
                && h.upgrade.is_some()
                && h.stream_read.is_some()
                && h.stream_write.is_some()
                && h.stream_close.is_some()
                && h.websocket_accept.is_some()
                && h.websocket_recv.is_some()
                && h.websocket_send.is_some()
                && h.websocket_close.is_some()
        })
    }

    /// `Err` with the standard one-line message when the server speaks an ABI older than 1.2: an
    /// app that upgrades connections (WebSockets) returns it from `init`
    /// (`ctx.require_abi_1_2()?`), refusing to load there.
    pub fn require_abi_1_2(&self) -> Result<(), String> {
        if self.host_is_1_2() {
            Ok(())
        } else if self.host_is_1_1() {
            Err(NEEDS_ABI_1_2.to_owned())
        } else {
            Err(NEEDS_ABI_1_2.replace("speaks 1.1", "speaks 1.0"))
        }
    }

    /// Whether the server speaks ABI 1.3: request and response trailers.
    pub fn host_is_1_3(&self) -> bool {
        self.host_is_1_2()
            && self.host.is_some_and(|h| {
                h.has_trailers() && h.request_trailers.is_some() && h.set_trailers.is_some()
            })
    }

    /// `Err` with the standard one-line message when the server speaks an ABI older than 1.3: an
    /// app that needs trailers (gRPC's status) returns it from `init` (`ctx.require_abi_1_3()?`),
    /// refusing to load there.
    pub fn require_abi_1_3(&self) -> Result<(), String> {
        if self.host_is_1_3() {
            Ok(())
        } else if self.host_is_1_2() {
            Err(NEEDS_ABI_1_3.to_owned())
        } else if self.host_is_1_1() {
            Err(NEEDS_ABI_1_3.replace("speaks 1.2", "speaks 1.1"))
        } else {
            Err(NEEDS_ABI_1_3.replace("speaks 1.2", "speaks 1.0"))
        }
    }

    /// A logger the app may keep for its whole life (e.g. in its state).
    pub fn logger(&self) -> Logger {
        self.logger
    }

    /// Sends one message to the host log.
    pub fn log(&self, level: LogLevel, msg: &str) {
        self.logger.log(level, msg);
    }

    /// Logs at [`LogLevel::Error`].
    pub fn error(&self, msg: &str) {
        self.logger.error(msg);
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&self, msg: &str) {
        self.logger.warn(msg);
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, msg: &str) {
        self.logger.info(msg);
    }
}
