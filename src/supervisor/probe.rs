//! `webserver check LIB:SYMBOL`: load an app exactly as a worker would, in a child process (so a
//! crash is reported, not suffered), run init, one synthetic `GET /` and shutdown.

use std::process::{Command, Stdio};

use app_abi::raw::{WS_ABI_MAJOR, WS_REQ_MULTITHREAD};

use crate::app::call::{self, MemoryTransport, RequestFacts, Scratch};
use crate::app::environ::Environ;
use crate::app::loader::LoadedApp;
use crate::app::target::AppTarget;

/// The parent side: run the probe in a child and judge how it ended. Returns the exit status.
pub(crate) fn check(spec: &str) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("webserver: error: cannot find my own executable: {e}");
            return 1;
        }
    };
    let status = Command::new(exe)
        .arg("__probe")
        .arg(spec)
        .stdin(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => 0,
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                eprintln!(
                    "webserver: error: {spec} crashed while being checked (killed by signal {signal}, {}); a worker loading it would crash too",
                    super::process::signal_name(signal)
                );
            }
            1
        }
        Err(e) => {
            eprintln!("webserver: error: cannot start the check: {e}");
            1
        }
    }
}

/// The child side: load, probe, report on stdout; errors on stderr.
pub(crate) fn probe(spec: &str) -> i32 {
    let loaded = AppTarget::parse(spec)
        .map_err(Into::into)
        .and_then(|target| LoadedApp::load(&target));
    let app = match loaded {
        Ok(app) => app,
        Err(e) => {
            eprintln!("webserver: error: {e}");
            return 1;
        }
    };
    println!("library: {}", app.path().display());
    println!("app:     {} {}", app.name(), app.version());
    let (major, minor) = app.abi_version();
    println!("abi:     {major}.{minor} (server speaks {WS_ABI_MAJOR}.x)");
    println!("init:    ok");
    let mut transport = MemoryTransport::default();
    let mut environ = Environ::default();
    let headers = [
        (&b"Host"[..], &b"localhost"[..]),
        (b"User-Agent", b"webserver-check"),
    ];
    let pairs = environ.build_synthetic_get(&headers, WS_REQ_MULTITHREAD);
    let facts = RequestFacts {
        is_head: false,
        version_minor: 1,
        keep_alive: false,
        flags: WS_REQ_MULTITHREAD,
        defer_flush: false,
    };
    let outcome = call::run(&app, pairs, facts, &mut transport, &mut Scratch::default());
    println!(
        "probe:   GET / -> {} ({} body bytes)",
        outcome.status, outcome.body_bytes
    );
    app.shutdown();
    println!("shutdown: ok");
    if outcome.status >= 500 {
        eprintln!(
            "webserver: error: {spec} answered GET / with {}; see the log above",
            outcome.status
        );
        return 1;
    }
    0
}
