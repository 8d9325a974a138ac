//! A generation's source pin: an empty in-memory file the master makes with each generation and
//! hands to every worker of it, so that an app which reads code from disk when it starts (the
//! WSGI bridge imports `.py` files) can keep the generation to one version of that code. The
//! first worker to load writes what it loaded (for the bridge: each app file and a hash of its
//! bytes); a later one, a replacement after a crash, a `--max-requests` recycle or a TTIN,
//! compares, and refuses to start if its files differ: "the source changed; HUP to deploy it".
//! Its refusal is a failed start like any other (logged, backed off, a crash loop if it
//! persists), and the generation's other workers serve on with the code it started with.
//!
//! A generation left with no worker serving (every one crashed or recycled, each replacement
//! refused) would serve nothing until a HUP; the master then empties its pin, with a warning, so
//! the next replacement loads the code on disk and pins it anew (`generation/crash_loop.rs`).
//!
//! A compiled library needs none of this: the generation's copy is sealed in memory
//! (`artifact.rs`). The file's format is the app's own business; the master never reads it.
//! A worker finds it at descriptor [`PIN_FD`], named by the [`PIN_FD_ENV`] variable (so an app
//! run by a server without pins, or by `webserver check`, sees none and pins nothing).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::children::FD_FLOOR;
use crate::sys::memfd::shared_file;
use crate::sys::process::dup_at_or_above;

/// Where a worker finds its generation's pin.
pub(crate) const PIN_FD: RawFd = 7;
/// The variable that tells the app which descriptor the pin is.
pub(crate) const PIN_FD_ENV: &str = "WEBSERVER_SOURCE_PIN_FD";

/// One generation's pin, shared by the master's handles to the generation.
#[derive(Clone, Debug)]
pub(crate) struct SourcePin(Arc<OwnedFd>);

impl SourcePin {
    /// An empty pin for a new generation, at or above `FD_FLOOR` (so handing it down as
    /// `PIN_FD` cannot overwrite another descriptor being handed down).
    pub(crate) fn new(hash: &str) -> std::io::Result<SourcePin> {
        // The WSGI bridge checks this name before it writes (`adapters/wsgi/src/source_pin.rs`).
        let file = shared_file(&format!("webserver-pin-{hash}"))?;
        Ok(SourcePin(Arc::new(dup_at_or_above(
            file.as_fd(),
            FD_FLOOR,
        )?)))
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Empties the pin: the next worker to load writes it anew.
    pub(crate) fn reset(&self) -> std::io::Result<()> {
        std::fs::File::from(self.0.try_clone()?).set_len(0)
    }
}
