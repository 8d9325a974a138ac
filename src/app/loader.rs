//! dlopen a library, find the descriptor, check it, run `init`.
//!
//! Check order (docs/src/reference/abi.md): magic → major equal → size ≥ the 1.0 size → `call`
//! present → `init` succeeds. Every error names the file and the symbol and says what to do about it.
//!
//! `LoadedApp` keeps the descriptor and the app's state private: others call the app through
//! `call` and end it with `shutdown`, which consumes it, so it cannot run while anyone can
//! still call in.
//!
//! A loaded library is never `dlclose`d: Rust thread-local destructors registered by the app would
//! run into unmapped code (rust-lang/rust#59629), so memory is reclaimed by replacing the process.

use std::ffi::{c_void, CStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use app_abi::raw::{
    WsApp, WsBody, WsBytes, WsInit, WsRequest, WS_ABI_MAJOR, WS_ABI_MINOR, WS_APP_LENGTH_ENDS_BODY,
    WS_APP_MAGIC, WS_APP_NONBLOCKING, WS_APP_NO_ENVIRON, WS_APP_REQUEST_PARTS,
    WS_APP_SINGLE_THREADED, WS_APP_SIZE_V1_0, WS_OK,
};

use super::host::{AppLogTag, HOST};
use super::target::{AppTarget, TargetError};
use crate::elf::symbols::{self, SymbolKind};

/// Why an app could not be loaded. Each message is one line that tells the user what to do.
#[derive(Debug)]
pub(crate) enum LoadError {
    Target(TargetError),
    NotLoadable {
        path: PathBuf,
        reason: String,
    },
    SymbolMissing {
        path: PathBuf,
        symbol: String,
        /// Mangled names in the library that spell `symbol` (C++ without `extern "C"`).
        mangled: Vec<String>,
    },
    BadMagic {
        path: PathBuf,
        symbol: String,
        /// The magic read, or `None` when the symbol was refused without reading it (a function,
        /// an object too small or misaligned for a descriptor).
        found: Option<u32>,
        /// What the symbol is, from the library's symbol table (`None`: the file does not say).
        kind: Option<SymbolKind>,
    },
    AbiMajor {
        path: PathBuf,
        symbol: String,
        found: (u16, u16),
    },
    TooSmall {
        path: PathBuf,
        symbol: String,
        size: u32,
    },
    NoCall {
        path: PathBuf,
        symbol: String,
    },
    InitFailed {
        path: PathBuf,
        symbol: String,
        message: String,
    },
    /// What the host does between opening the library and its init (the worker's sandbox)
    /// failed: init was not called.
    BeforeInit(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Target(e) => write!(f, "{e}"),
            LoadError::NotLoadable { path, reason } => write!(
                f,
                "cannot load {}: {reason} ({})",
                path.display(),
                not_loadable_advice(reason)
            ),
            LoadError::SymbolMissing {
                path,
                symbol,
                mangled,
            } => match mangled.first() {
                None => write!(
                    f,
                    "symbol '{symbol}' not found in {}; export it with app_abi::export_app! or a C `const ws_app {symbol}`",
                    path.display()
                ),
                Some(spelling) => write!(
                    f,
                    "symbol '{symbol}' not found in {}, but '{spelling}' is: a C++ (or Rust) mangled name the server cannot look up; in C++ define it as `extern \"C\" const ws_app {symbol} = {{...}};` (a C++ const global is internal and mangled), in Rust use app_abi::export_app!",
                    path.display()
                ),
            },
            LoadError::BadMagic {
                path,
                symbol,
                kind: Some(SymbolKind::Function),
                ..
            } => write!(
                f,
                "{}:{symbol} is a function, not a webserver app descriptor; SYMBOL names data: a C `const ws_app {symbol} = {{ WS_APP_HEADER(0), ... }};` or app_abi::export_app!({symbol}, ...)",
                path.display()
            ),
            LoadError::BadMagic {
                path, symbol, found, ..
            } => {
                write!(
                    f,
                    "{}:{symbol} is not a webserver app descriptor (",
                    path.display()
                )?;
                match found {
                    Some(found) => write!(f, "magic {found:#010x}")?,
                    None => write!(f, "too small or misaligned for one")?,
                }
                write!(
                    f,
                    ", expected magic {WS_APP_MAGIC:#010x}); it is data of another kind: name the ws_app built with WS_APP_HEADER or app_abi::export_app!"
                )
            }
            LoadError::AbiMajor { path, symbol, found } => write!(
                f,
                "{}:{symbol} was built for ABI {}.{} but this server speaks ABI {WS_ABI_MAJOR}.{WS_ABI_MINOR}; rebuild the app against app-abi {WS_ABI_MAJOR}.x",
                path.display(),
                found.0,
                found.1
            ),
            LoadError::TooSmall { path, symbol, size } => write!(
                f,
                "{}:{symbol} declares a {size}-byte descriptor, smaller than the ABI 1.0 size {WS_APP_SIZE_V1_0}; rebuild it against the header",
                path.display()
            ),
            LoadError::NoCall { path, symbol } => write!(
                f,
                "{}:{symbol} has no `call` function; an app must handle requests",
                path.display()
            ),
            LoadError::InitFailed { path, symbol, message } => {
                write!(f, "{}:{symbol} init failed: {message}", path.display())
            }
            LoadError::BeforeInit(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<TargetError> for LoadError {
    fn from(e: TargetError) -> Self {
        LoadError::Target(e)
    }
}

/// An app that passed every check and whose `init` succeeded. It lives until `shutdown`, which
/// consumes it: whoever can still call into the app holds a reference, so `shutdown` cannot run
/// while a `call` does (the server hands the app back only once its threads are joined).
pub(crate) struct LoadedApp {
    descriptor: &'static WsApp,
    state: *mut c_void,
    path: PathBuf,
    name: String,
    version: String,
    log_tag: &'static AppLogTag,
    single_threaded: bool,
    /// Asked per request: kept as one bool (see `reads_environ`).
    reads_environ: bool,
    /// `WS_APP_LENGTH_ENDS_BODY`, asked per response.
    ends_at_length: bool,
    /// `never_blocks`, asked per response.
    never_blocks: bool,
}

// SAFETY: the descriptor is immutable static data; `state` is handed to the app's `call`, which the
// ABI requires to be callable concurrently from any thread (single-threaded apps are serialised by
// the caller, see `single_threaded`).
unsafe impl Send for LoadedApp {}
// SAFETY: as above — the host only reads these fields; concurrent use of `state` is the app's
// documented contract.
unsafe impl Sync for LoadedApp {}

/// `LoadedApp::wants_parts` of `descriptor`.
fn wants_parts(descriptor: &WsApp) -> bool {
    descriptor.abi_minor >= 3 && descriptor.flags & WS_APP_REQUEST_PARTS != 0
}

impl LoadedApp {
    /// Resolve, open, check and initialise `target`.
    /// Resolve, open, check and initialise `target`; `args` reach its `init` (ABI 1.1).
    pub(crate) fn load(target: &AppTarget, args: &[OsString]) -> Result<LoadedApp, LoadError> {
        let path = target.resolve()?;
        Self::load_path(&path, &target.symbol, args)
    }

    pub(crate) fn load_path(
        path: &Path,
        symbol: &str,
        args: &[OsString],
    ) -> Result<LoadedApp, LoadError> {
        Self::load_path_then(path, symbol, args, || Ok(()))
    }

    /// [`load_path`](Self::load_path), with `before_init` run once the library and everything
    /// it links are mapped, right before the app's init: a sandbox put in place there still
    /// lets the dynamic loader read the libraries, and already holds for every line of the
    /// app's own code (but its library constructors, which run when it is opened).
    pub(crate) fn load_path_then(
        path: &Path,
        symbol: &str,
        args: &[OsString],
        before_init: impl FnOnce() -> Result<(), String>,
    ) -> Result<LoadedApp, LoadError> {
        let descriptor = open_descriptor(path, symbol)?;
        let err = |f: fn(PathBuf, String) -> LoadError| f(path.to_path_buf(), symbol.to_owned());
        if descriptor.magic != WS_APP_MAGIC {
            let file = std::fs::read(path).unwrap_or_default();
            return Err(LoadError::BadMagic {
                path: path.to_path_buf(),
                symbol: symbol.to_owned(),
                found: Some(descriptor.magic),
                kind: symbols::exported(&file, symbol).map(|(kind, _)| kind),
            });
        }
        if descriptor.abi_major != WS_ABI_MAJOR {
            return Err(LoadError::AbiMajor {
                path: path.to_path_buf(),
                symbol: symbol.to_owned(),
                found: (descriptor.abi_major, descriptor.abi_minor),
            });
        }
        if descriptor.size < WS_APP_SIZE_V1_0 {
            return Err(LoadError::TooSmall {
                path: path.to_path_buf(),
                symbol: symbol.to_owned(),
                size: descriptor.size,
            });
        }
        if descriptor.call.is_none() {
            return Err(err(|path, symbol| LoadError::NoCall { path, symbol }));
        }
        let name = static_str(descriptor.name).unwrap_or_else(|| symbol.to_owned());
        let version = static_str(descriptor.version).unwrap_or_else(|| "?".to_owned());
        let log_tag: &'static AppLogTag = Box::leak(Box::new(AppLogTag { name: name.clone() }));
        before_init().map_err(LoadError::BeforeInit)?;
        let state =
            run_init(descriptor, log_tag, args).map_err(|message| LoadError::InitFailed {
                path: path.to_path_buf(),
                symbol: symbol.to_owned(),
                message,
            })?;
        Ok(LoadedApp {
            descriptor,
            state,
            path: path.to_path_buf(),
            name,
            version,
            log_tag,
            single_threaded: descriptor.flags & WS_APP_SINGLE_THREADED != 0,
            reads_environ: !(wants_parts(descriptor) && descriptor.flags & WS_APP_NO_ENVIRON != 0),
            never_blocks: descriptor.abi_minor >= 1 && descriptor.flags & WS_APP_NONBLOCKING != 0,
            // Like the request-parts flags, a bit only an app built against 1.3 or later can
            // mean: an older app's undefined bits change nothing.
            ends_at_length: descriptor.abi_minor >= 3
                && descriptor.flags & WS_APP_LENGTH_ENDS_BODY != 0,
        })
    }

    /// The app's own name (`ws_app.name`, or the symbol if it has none).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The app's own version string (`?` if it has none).
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The library file it was loaded from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The ABI (major, minor) the app was built against.
    pub(crate) fn abi_version(&self) -> (u16, u16) {
        (self.descriptor.abi_major, self.descriptor.abi_minor)
    }

    /// Built for ABI 1.1 or later: its body's `next` may answer `WS_PENDING` (for a 1.0 app that
    /// value is no code at all).
    pub(crate) fn defers(&self) -> bool {
        self.descriptor.abi_minor >= 1
    }

    /// A deferred app that declared its calls never wait (`WS_APP_NONBLOCKING`): they may run
    /// on the HTTP/2 thread.
    pub(crate) fn never_blocks(&self) -> bool {
        self.never_blocks
    }

    /// The app reads its requests' heads through `request_parts` (`WS_APP_REQUEST_PARTS`, ABI
    /// 1.3): the server fills them beside the environ.
    pub(crate) fn wants_parts(&self) -> bool {
        wants_parts(self.descriptor)
    }

    /// The app reads the environ: every app but one that reads the parts and declared it
    /// reads nothing else (`WS_APP_NO_ENVIRON`, ABI 1.3), which gets none.
    pub(crate) fn reads_environ(&self) -> bool {
        self.reads_environ
    }

    /// The app's body ends with its length (`WS_APP_LENGTH_ENDS_BODY`): once that many bytes
    /// came, its `next` is not asked for the end.
    pub(crate) fn ends_at_length(&self) -> bool {
        self.ends_at_length
    }

    /// The app asked for its calls to be serialised (`WS_APP_SINGLE_THREADED`).
    pub(crate) fn single_threaded(&self) -> bool {
        self.single_threaded
    }

    /// What the app passes back to the host's `log` to be named in the server's log.
    pub(crate) fn log_ctx(&self) -> *const c_void {
        self.log_tag as *const AppLogTag as *const c_void
    }

    /// Run the app's `call` for one request; returns its status code (`WS_OK` or an error).
    ///
    /// # Safety
    ///
    /// Every pointer in `request` (environ, io, host) must stay valid until the body `call`
    /// fills is closed, and when `call` returns `WS_OK` the caller must call `body.close` once.
    /// For a `single_threaded` app, the caller serialises calls.
    pub(crate) unsafe fn call(&self, request: &WsRequest, body: &mut WsBody) -> i32 {
        let call = self
            .descriptor
            .call
            .expect("loader checked `call` is present");
        // SAFETY: the state came from this app's init and lives until `shutdown`, which consumes
        // `self` and so cannot run meanwhile; the caller upholds the pointer contract above.
        unsafe { call(self.state, request, body) }
    }

    /// Run the app's `shutdown`, once, after the last request finished. Taking `self` proves no
    /// thread can call into the app any more: the caller has the only reference.
    pub(crate) fn shutdown(self) {
        if let Some(shutdown) = self.descriptor.shutdown {
            // SAFETY: `state` came from this app's `init`; `self` is consumed, so no `call`,
            // `next` or `close` can run concurrently or later.
            unsafe { shutdown(self.state) };
        }
    }
}

/// dlopen with RTLD_NOW | RTLD_LOCAL and look the symbol up as a descriptor address.
fn open_descriptor(path: &Path, symbol: &str) -> Result<&'static WsApp, LoadError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // RTLD_NOW: fail here on a missing symbol, not in the middle of a request.
    // RTLD_LOCAL: two generations' symbols must not interpose (hot swap loads a new copy beside the old).
    // SAFETY: loading a library runs its initialisers; the user asked to run this library, and it
    // is the documented contract of webserver that apps are trusted native code.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        LoadError::NotLoadable {
            path: path.to_path_buf(),
            reason: loader_message(&e),
        }
    })?;
    // SAFETY: the symbol's address is read as a pointer only; what it points to is checked
    // (magic, version, size) before any field beyond the fixed header is trusted.
    let address = unsafe { library.get::<*const WsApp>(symbol.as_bytes()) }
        .map_err(|_| symbol_missing(path, symbol))?;
    let address: *const WsApp = address.into_raw() as *const WsApp;
    // Never dlclose (see the module docs): the descriptor and its code live as long as the process.
    std::mem::forget(library);
    if address.is_null() {
        return Err(symbol_missing(path, symbol));
    }
    // Before anything is read through the address: a function, an object smaller than the
    // fixed header (whose bytes may end at the end of a mapping) or an address not aligned for
    // a descriptor cannot be one, and a reference to it would be undefined behaviour.
    let listed = symbols::exported(&std::fs::read(path).unwrap_or_default(), symbol);
    let too_small = |size: u64| size != 0 && size < FIXED_HEADER_LEN;
    let refused = match listed {
        Some((SymbolKind::Function, _)) => true,
        Some((_, size)) => too_small(size),
        None => false,
    } || !address.is_aligned();
    if refused {
        return Err(LoadError::BadMagic {
            path: path.to_path_buf(),
            symbol: symbol.to_owned(),
            found: None,
            kind: listed.map(|(kind, _)| kind),
        });
    }
    // SAFETY: the symbol resolved to a non-null, aligned address of data in a library that stays
    // mapped forever; the fixed header (16 bytes) is read to identify it, and the rest only after
    // the magic, major and size checks prove it is a descriptor of at least the 1.0 size.
    Ok(unsafe { &*address })
}

/// The descriptor's fixed header (magic, major, minor, size, flags): what is read to identify it.
const FIXED_HEADER_LEN: u64 = 16;

/// `symbol` is not exported: say so, with the mangled names that spell it if the file has any.
fn symbol_missing(path: &Path, symbol: &str) -> LoadError {
    let file = std::fs::read(path).unwrap_or_default();
    LoadError::SymbolMissing {
        path: path.to_path_buf(),
        symbol: symbol.to_owned(),
        mangled: symbols::mangled_spellings(&file, symbol),
    }
}

/// What to do about a dlopen failure, from glibc's message: an unresolved symbol is a link
/// problem of the app (not a platform mismatch), a missing dependency wants its path, and only
/// what is left (no ELF header, wrong class or machine) is about the file itself.
fn not_loadable_advice(reason: &str) -> &'static str {
    if reason.contains("undefined symbol") {
        "a link problem: the library uses a symbol that neither it nor the libraries it links define; link the library that defines it (e.g. -lm), define the function it declares, or in C++ give both sides the same extern \"C\""
    } else if reason.contains("cannot open shared object file") {
        "a library it depends on is not found: install it, or point LD_LIBRARY_PATH or the app's rpath at it"
    } else if reason.contains("Is a directory") {
        "it is a directory: name the .so file inside it"
    } else {
        "is it a shared library built for this platform?"
    }
}

fn loader_message(error: &libloading::Error) -> String {
    use std::error::Error;
    match error.source() {
        Some(source) => source.to_string(),
        None => error.to_string(),
    }
}

fn static_str(ptr: *const std::ffi::c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the ABI says `name`/`version` are NUL-terminated static strings owned by the library,
    // which is never unloaded.
    let s = unsafe { CStr::from_ptr(ptr) };
    Some(s.to_string_lossy().into_owned())
}

/// Room for the message an `init` that fails writes (longer ones are cut).
const INIT_ERROR_CAPACITY: usize = 1024;

fn run_init(
    descriptor: &WsApp,
    log_tag: &'static AppLogTag,
    app_args: &[OsString],
) -> Result<*mut c_void, String> {
    let Some(init) = descriptor.init else {
        return Ok(std::ptr::null_mut());
    };
    let words: Vec<WsBytes> = app_args
        .iter()
        .map(|word| WsBytes::from_slice(word.as_bytes()))
        .collect();
    let mut error_buf = [0u8; INIT_ERROR_CAPACITY];
    let mut error_len = 0usize;
    let args = WsInit {
        size: std::mem::size_of::<WsInit>() as u32,
        reserved: 0,
        host: &HOST,
        log_ctx: log_tag as *const AppLogTag as *const c_void,
        error_buf: error_buf.as_mut_ptr(),
        error_cap: error_buf.len(),
        error_len: &mut error_len,
        args: words.as_ptr(),
        n_args: words.len(),
    };
    let mut state: *mut c_void = std::ptr::null_mut();
    // SAFETY: `args` and the buffers it points to live across the call; `state` is a valid
    // out-pointer. The app's init is trusted native code (it cannot be made memory-safe from here).
    let rc = unsafe { init(&args, &mut state) };
    if rc == WS_OK {
        return Ok(state);
    }
    let len = error_len.min(error_buf.len());
    let message = String::from_utf8_lossy(&error_buf[..len]).trim().to_owned();
    Err(if message.is_empty() {
        format!("init returned {rc} without a message")
    } else {
        message
    })
}
