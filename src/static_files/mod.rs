//! Files the server answers itself (`--static PREFIX=DIR`), so that an app's static assets
//! (Django's `collectstatic` output, Flask's `static/`) need neither the app nor a proxy.
//!
//! A worker opens each DIR once at start ([`StaticFiles::open`]; a missing one stops the worker
//! with a message). A serving thread asks [`StaticFiles::answer`] about each request before the
//! app would run: a path under a PREFIX is answered here (`respond.rs`) and never reaches the
//! app, whatever the method (GET and HEAD are served, others get 405). The path is decoded and
//! checked, then the file is opened beneath DIR with the kernel refusing symlinks that leave it
//! (`path.rs`) and kept open for the next requests, which check with one `fstatat` that the
//! path still names it (`cache.rs`); the validators, ranges and precompressed siblings are
//! `conditional.rs`'s. A small body goes out with its head in the connection's batch of
//! responses; a larger one is a [`FileBody`] that the connection sends with `sendfile(2)` as
//! the client reads, its head sent with `MSG_MORE` to share the body's segments, parking
//! between turns (`body.rs`). A file an app hands over (ABI 1.2 `send_file`) goes out the
//! same way, after `handoff.rs` has applied the same rules to it.

mod args;
mod body;
mod cache;
mod conditional;
mod handoff;
mod path;
mod respond;

use std::borrow::Cow;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub(crate) use args::StaticArgs;
pub(crate) use body::{FileBody, Sent};
pub(crate) use handoff::{hand_off, AppHead, Conditions};
pub(crate) use respond::{Answer, Request};

use crate::http::percent::percent_decode_into;

/// Every `--static` mount of a worker, longest prefix first.
#[derive(Debug)]
pub(crate) struct StaticFiles {
    mounts: Vec<Mount>,
}

/// One `--static PREFIX=DIR`, opened.
#[derive(Debug)]
struct Mount {
    /// Decoded, starting and ending with `/`.
    prefix: Vec<u8>,
    /// DIR, opened as a place to open files beneath.
    dir: OwnedFd,
    /// DIR's canonical path (for the check without `openat2`).
    root: PathBuf,
    /// Its `--static-cache-control`.
    cache_control: Option<String>,
    /// Files served from it, kept open.
    cache: cache::FileCache,
}

impl StaticFiles {
    /// Opens every mount's directory; `None` without any mount. The error says which mount
    /// and why, for the worker to report.
    pub(crate) fn open(args: &StaticArgs) -> Result<Option<StaticFiles>, String> {
        if args.mounts.is_empty() {
            return Ok(None);
        }
        if let Some(message) = args.unmatched_cache_control() {
            return Err(message);
        }
        let mut mounts = Vec::with_capacity(args.mounts.len());
        for mount in &args.mounts {
            let cannot = |e: &dyn std::fmt::Display| {
                format!(
                    "--static {mount}: cannot serve files from {}: {e} (DIR must be an existing directory, relative to the directory the server was started in)",
                    mount.dir.display()
                )
            };
            let root = mount.dir.canonicalize().map_err(|e| cannot(&e))?;
            let dir = crate::sys::file::open_dir(&root).map_err(|e| cannot(&e))?;
            mounts.push(Mount {
                prefix: mount.prefix.as_bytes().to_vec(),
                dir,
                root,
                cache_control: args.cache_control_for(&mount.prefix),
                cache: cache::FileCache::default(),
            });
        }
        mounts.sort_by_key(|mount| std::cmp::Reverse(mount.prefix.len()));
        Ok(Some(StaticFiles { mounts }))
    }

    /// The mount a request path (still percent-encoded) falls under, and the decoded rest of
    /// the path after its prefix.
    fn route<'p>(&self, path: &'p [u8]) -> Option<(&Mount, Cow<'p, [u8]>)> {
        let decoded: Cow<'p, [u8]> = if path.contains(&b'%') {
            let mut out = Vec::with_capacity(path.len());
            percent_decode_into(path, &mut out);
            Cow::Owned(out)
        } else {
            Cow::Borrowed(path)
        };
        let mount = self
            .mounts
            .iter()
            .find(|mount| decoded.starts_with(&mount.prefix))?;
        let rest = match decoded {
            Cow::Borrowed(path) => Cow::Borrowed(path.get(mount.prefix.len()..)?),
            Cow::Owned(path) => Cow::Owned(path.get(mount.prefix.len()..)?.to_vec()),
        };
        Some((mount, rest))
    }
}
